"""audiogan-server: the gRPC front of audiogan (proto in proto/audiogan/v1)."""
