"""Language-model backends (llama.cpp local, OpenAI-compatible, none), the context guard and structured
extraction. Importing this package is light (pydantic only); llama_cpp and httpx load inside the backends."""

from qkv.tools.llm.base import BackendError, Generation, GenerationStream, LLMBackend, open_backend
from qkv.tools.llm.extract import Extraction, extract, extract_with_provenance
from qkv.tools.llm.guard import GuardPolicy

__all__ = [
    "BackendError",
    "Extraction",
    "Generation",
    "GenerationStream",
    "GuardPolicy",
    "LLMBackend",
    "extract",
    "extract_with_provenance",
    "open_backend",
]
