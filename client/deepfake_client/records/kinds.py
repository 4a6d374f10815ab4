"""The values a record's kind and verdict take (no dependencies: the CLI's parser imports them)."""

KINDS = ("image", "batch_item", "video", "frame", "webcam")
VERDICTS = ("FAKE", "REAL", "NO_FACE")
