/* A stand-in for libpcaudio.so.0 so that Debian's libespeak-ng.so.1 loads where no audio stack exists.
 *
 * libespeak-ng links libpcaudio only to play sound itself; phonemizer initialises espeak-ng in
 * synchronous mode, which never opens an audio device. The real libpcaudio pulls in PulseAudio, ALSA,
 * X11 and systemd (about 30 libraries), none of which the GPU image has. Every call here reports that
 * there is no device. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct audio_object;

struct audio_object *create_audio_device_object(const char *device, const char *application_name,
                                                const char *description) {
    (void)device; (void)application_name; (void)description;
    return NULL;
}

int audio_object_open(struct audio_object *object, int format, uint32_t rate, uint8_t channels) {
    (void)object; (void)format; (void)rate; (void)channels;
    return ENODEV;
}

int audio_object_write(struct audio_object *object, const void *data, size_t bytes) {
    (void)object; (void)data; (void)bytes;
    return ENODEV;
}

int audio_object_drain(struct audio_object *object) { (void)object; return ENODEV; }
int audio_object_flush(struct audio_object *object) { (void)object; return ENODEV; }
void audio_object_close(struct audio_object *object) { (void)object; }
void audio_object_destroy(struct audio_object *object) { (void)object; }

const char *audio_object_strerror(struct audio_object *object, int error) {
    (void)object; (void)error;
    return "no audio device: libpcaudio stand-in (audiogan scripts/espeak)";
}
