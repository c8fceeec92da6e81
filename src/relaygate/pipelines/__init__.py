"""Extraction pipelines at run time: jobs run through the gateway's own request path.

``Pipelines`` holds the compiled pipelines, the job store and this process's workers;
``gateway.ask_as_key`` is the one in-process entry to the request path a job's model calls take.
"""

from relaygate.pipelines.attempt import AttemptEnd, Failed, Succeeded, run_attempt
from relaygate.pipelines.callbacks import Callbacks, signature
from relaygate.pipelines.compiled import CompiledPipeline, compile_pipelines
from relaygate.pipelines.gateway import GatewayPath, Spent, ask_as_key
from relaygate.pipelines.runtime import Pipelines
from relaygate.pipelines.worker import PipelineWorker

__all__ = [
    "AttemptEnd",
    "Callbacks",
    "CompiledPipeline",
    "Failed",
    "GatewayPath",
    "PipelineWorker",
    "Pipelines",
    "Spent",
    "Succeeded",
    "ask_as_key",
    "compile_pipelines",
    "run_attempt",
    "signature",
]
