from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    PCM16: _ClassVar[AudioEncoding]
    FLOAT32: _ClassVar[AudioEncoding]
    WAV: _ClassVar[AudioEncoding]
    FLAC: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
PCM16: AudioEncoding
FLOAT32: AudioEncoding
WAV: AudioEncoding
FLAC: AudioEncoding

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ...) -> None: ...

class Mel(_message.Message):
    __slots__ = ("n_mels", "data")
    N_MELS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    n_mels: int
    data: bytes
    def __init__(self, n_mels: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("audio", "encoding", "sample_rate_hz", "num_samples", "duration_seconds", "sentences", "words", "marks")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    encoding: AudioEncoding
    sample_rate_hz: int
    num_samples: int
    duration_seconds: float
    sentences: _containers.RepeatedCompositeFieldContainer[TimedText]
    words: _containers.RepeatedCompositeFieldContainer[TimedText]
    marks: _containers.RepeatedCompositeFieldContainer[TimedText]
    def __init__(self, audio: _Optional[bytes] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., num_samples: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., sentences: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ..., words: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ..., marks: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ...) -> None: ...

class TimedText(_message.Message):
    __slots__ = ("text", "start_seconds", "end_seconds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    start_seconds: float
    end_seconds: float
    def __init__(self, text: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("sequence", "sample_offset", "audio", "encoding", "sample_rate_hz", "final", "sentences", "words", "marks")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    sample_offset: int
    audio: bytes
    encoding: AudioEncoding
    sample_rate_hz: int
    final: bool
    sentences: _containers.RepeatedCompositeFieldContainer[TimedText]
    words: _containers.RepeatedCompositeFieldContainer[TimedText]
    marks: _containers.RepeatedCompositeFieldContainer[TimedText]
    def __init__(self, sequence: _Optional[int] = ..., sample_offset: _Optional[int] = ..., audio: _Optional[bytes] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., final: _Optional[bool] = ..., sentences: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ..., words: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ..., marks: _Optional[_Iterable[_Union[TimedText, _Mapping]]] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "mel", "voice_name", "language_code", "format", "speed", "pitch_shift", "vocoder", "speaker", "timings")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    PITCH_SHIFT_FIELD_NUMBER: _ClassVar[int]
    VOCODER_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    text: str
    mel: Mel
    voice_name: str
    language_code: str
    format: AudioFormat
    speed: float
    pitch_shift: float
    vocoder: str
    speaker: int
    timings: bool
    def __init__(self, text: _Optional[str] = ..., mel: _Optional[_Union[Mel, _Mapping]] = ..., voice_name: _Optional[str] = ..., language_code: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., speed: _Optional[float] = ..., pitch_shift: _Optional[float] = ..., vocoder: _Optional[str] = ..., speaker: _Optional[int] = ..., timings: _Optional[bool] = ...) -> None: ...

class VocodeRequest(_message.Message):
    __slots__ = ("mel", "vocoder", "format")
    MEL_FIELD_NUMBER: _ClassVar[int]
    VOCODER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    mel: Mel
    vocoder: str
    format: AudioFormat
    def __init__(self, mel: _Optional[_Union[Mel, _Mapping]] = ..., vocoder: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ...) -> None: ...

class Timbre(_message.Message):
    __slots__ = ("instrument", "latent")
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    instrument: str
    latent: Latent
    def __init__(self, instrument: _Optional[str] = ..., latent: _Optional[_Union[Latent, _Mapping]] = ...) -> None: ...

class Latent(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class NoteSpec(_message.Message):
    __slots__ = ("pitch", "timbre", "velocity", "seconds", "seed")
    PITCH_FIELD_NUMBER: _ClassVar[int]
    TIMBRE_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    pitch: int
    timbre: Timbre
    velocity: int
    seconds: float
    seed: int
    def __init__(self, pitch: _Optional[int] = ..., timbre: _Optional[_Union[Timbre, _Mapping]] = ..., velocity: _Optional[int] = ..., seconds: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class GenerateNotesRequest(_message.Message):
    __slots__ = ("notes", "model", "format")
    NOTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[NoteSpec]
    model: str
    format: AudioFormat
    def __init__(self, notes: _Optional[_Iterable[_Union[NoteSpec, _Mapping]]] = ..., model: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ...) -> None: ...

class GenerateNotesResponse(_message.Message):
    __slots__ = ("notes",)
    NOTES_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Audio]
    def __init__(self, notes: _Optional[_Iterable[_Union[Audio, _Mapping]]] = ...) -> None: ...

class InterpolateTimbreRequest(_message.Message):
    __slots__ = ("a", "b", "alpha", "steps", "pitch", "velocity", "seconds", "mode", "seed", "model", "format")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    a: Timbre
    b: Timbre
    alpha: float
    steps: int
    pitch: int
    velocity: int
    seconds: float
    mode: str
    seed: int
    model: str
    format: AudioFormat
    def __init__(self, a: _Optional[_Union[Timbre, _Mapping]] = ..., b: _Optional[_Union[Timbre, _Mapping]] = ..., alpha: _Optional[float] = ..., steps: _Optional[int] = ..., pitch: _Optional[int] = ..., velocity: _Optional[int] = ..., seconds: _Optional[float] = ..., mode: _Optional[str] = ..., seed: _Optional[int] = ..., model: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ...) -> None: ...

class InterpolateTimbreResponse(_message.Message):
    __slots__ = ("notes", "alphas")
    NOTES_FIELD_NUMBER: _ClassVar[int]
    ALPHAS_FIELD_NUMBER: _ClassVar[int]
    notes: _containers.RepeatedCompositeFieldContainer[Audio]
    alphas: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, notes: _Optional[_Iterable[_Union[Audio, _Mapping]]] = ..., alphas: _Optional[_Iterable[float]] = ...) -> None: ...

class ConvertOptions(_message.Message):
    __slots__ = ("target", "model", "format", "flat", "target_b", "mode", "seed")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FLAT_FIELD_NUMBER: _ClassVar[int]
    TARGET_B_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    target: Timbre
    model: str
    format: AudioFormat
    flat: bool
    target_b: Timbre
    mode: str
    seed: int
    def __init__(self, target: _Optional[_Union[Timbre, _Mapping]] = ..., model: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, _Mapping]] = ..., flat: _Optional[bool] = ..., target_b: _Optional[_Union[Timbre, _Mapping]] = ..., mode: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class ConvertTimbreRequest(_message.Message):
    __slots__ = ("options", "audio_chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: ConvertOptions
    audio_chunk: bytes
    def __init__(self, options: _Optional[_Union[ConvertOptions, _Mapping]] = ..., audio_chunk: _Optional[bytes] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "sample_rate_hz", "language_code", "card_json", "speakers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_rate_hz: int
    language_code: str
    card_json: str
    speakers: int
    def __init__(self, name: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., language_code: _Optional[str] = ..., card_json: _Optional[str] = ..., speakers: _Optional[int] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("voices", "vocoders")
    VOICES_FIELD_NUMBER: _ClassVar[int]
    VOCODERS_FIELD_NUMBER: _ClassVar[int]
    voices: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    vocoders: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, voices: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., vocoders: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class ListInstrumentsRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Instrument(_message.Message):
    __slots__ = ("name", "family", "model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    model: str
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ListInstrumentsResponse(_message.Message):
    __slots__ = ("instruments", "models")
    INSTRUMENTS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    instruments: _containers.RepeatedCompositeFieldContainer[Instrument]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, instruments: _Optional[_Iterable[_Union[Instrument, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
