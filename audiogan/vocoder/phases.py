"""Where a vocoder's phase can come from at inference, apart from the model: command lines offer these
choices without importing torch."""

INFERENCE_PHASES = ("network", "rtpghi")  # the phase head's output, or integrated from the magnitude (RTPGHI)
