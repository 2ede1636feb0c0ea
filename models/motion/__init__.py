"""The shipped default model: model.onnx + model.json (package data), built by `make model`."""
