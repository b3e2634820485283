_instruments = ("onnxruntime >= 1.17",)
