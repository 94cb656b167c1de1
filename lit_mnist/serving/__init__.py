"""Using a trained network outside this project's Python: its ONNX export."""
