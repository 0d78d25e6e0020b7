"""FastAPI + uvicorn + onnxruntime serving the same model.onnx, written plainly, the way a Python
team would (and the course did): pydantic request models, numpy, one InferenceSession.

    MODEL_PATH=models/heart-disease/model.onnx uvicorn fastapi_server:app --port 8001
"""
import os
from typing import List, Optional, Union

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_NAME = "heart-disease"
session = ort.InferenceSession(os.environ["MODEL_PATH"], providers=["CPUExecutionProvider"])
app = FastAPI()


class InputTensor(BaseModel):
    name: str
    shape: List[int]
    datatype: str
    data: List[Union[float, List[float]]]


class InferRequest(BaseModel):
    id: Optional[str] = None
    inputs: List[InputTensor]


class Features(BaseModel):
    age: float
    sex: float
    cp: float
    trestbps: float
    chol: float
    fbs: float
    restecg: float
    thalach: float
    exang: float
    oldpeak: float
    slope: float
    ca: float
    thal: float


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post(f"/v2/models/{MODEL_NAME}/infer")
def infer(request: InferRequest):
    tensor = request.inputs[0]
    x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
    label, probabilities = session.run(None, {"input": x})
    return {
        "model_name": MODEL_NAME,
        "id": request.id,
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": list(label.shape), "data": label.tolist()},
            {"name": "probabilities", "datatype": "FP32", "shape": list(probabilities.shape),
             "data": probabilities.flatten().tolist()},
        ],
    }


@app.post("/predict")
def predict(features: Features):
    x = np.asarray([list(features.model_dump().values())], dtype=np.float32)
    label, probabilities = session.run(None, {"input": x})
    return {"label": int(label[0]), "probabilities": probabilities[0].tolist()}
