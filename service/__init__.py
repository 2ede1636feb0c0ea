"""The HTTP service: video classification and summaries over ONNX Runtime (no torch here)."""
