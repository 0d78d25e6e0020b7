"""KServe's Python model server (the V2 REST protocol) with onnxruntime on the same model.onnx.

    MODEL_PATH=models/heart-disease/model.onnx python kserve_server.py --http_port 8003
"""
import os

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class HeartDisease(Model):
    def __init__(self, name):
        super().__init__(name)
        self.session = None
        self.load()

    def load(self):
        self.session = ort.InferenceSession(os.environ["MODEL_PATH"], providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None):
        x = payload.inputs[0].as_numpy().astype(np.float32)
        label, probabilities = self.session.run(None, {"input": x})
        outputs = []
        for name, array, datatype in (("label", label, "INT64"), ("probabilities", probabilities, "FP32")):
            out = InferOutput(name=name, shape=list(array.shape), datatype=datatype)
            out.set_data_from_numpy(array)
            outputs.append(out)
        return InferResponse(model_name=self.name, infer_outputs=outputs, response_id=payload.id)


if __name__ == "__main__":
    args, _ = model_server.parser.parse_known_args()
    ModelServer(workers=1).start([HeartDisease("heart-disease")])
