"""Usage intake on NATS JetStream (docs/decisions/0025)."""
