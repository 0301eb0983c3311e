"""The baseline for request throughput: a bare FastAPI endpoint that validates the same
body model and answers 201, with no database. Served by the same uvicorn settings."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from signoff.entrypoints.api.schemas import RequestCreate

app = FastAPI()


@app.post("/v1/requests", status_code=201)
def create(body: RequestCreate) -> dict[str, Any]:
    return {"status": "pending", "action": body.action.model_dump()}
