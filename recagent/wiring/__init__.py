"""The one place that turns settings into running parts: store, retriever, LLM client, ranker.

The CLI, chat, the Python API, eval and the benchmarks all build through here, so any
configuration eval can measure (hybrid retrieval, NIR, logprob ranking, a bootstrap, the
vLLM engine) the product can run too, chosen by `Settings`. Nothing here reads the
environment (the CLI does); context managers own lifetimes: an embedded LLM server or a
vLLM engine is started only when no server URL is given, and stopped on exit.

The names are loaded on first use (PEP 562): `recagent --help` and the commands that need
no catalog stay free of Chroma, scipy and the LLM client (the CLI's start-up time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recagent.wiring.agent import build_agent
    from recagent.wiring.parts import (
        build_retriever,
        embedded_server,
        engine_model,
        open_embedder,
        open_interactions,
        open_llm,
        open_store,
        usable_home,
        vllm_server,
    )
    from recagent.wiring.product import (
        Parts,
        catalog_titles,
        fit_and_save,
        fit_product,
        fitted_fusion,
        fitted_retriever_spec,
        open_parts,
        open_recommender,
        product_ranker,
        product_retriever,
        stored_rows,
        without_llm,
    )
    from recagent.wiring.settings import (
        PRODUCT_RANKER,
        HybridSpec,
        LLMSpec,
        RetrieverSpec,
        Settings,
        SourceName,
    )

_WHERE = {
    "build_agent": "recagent.wiring.agent",
    "build_retriever": "recagent.wiring.parts",
    "embedded_server": "recagent.wiring.parts",
    "engine_model": "recagent.wiring.parts",
    "open_embedder": "recagent.wiring.parts",
    "open_interactions": "recagent.wiring.parts",
    "open_llm": "recagent.wiring.parts",
    "open_store": "recagent.wiring.parts",
    "usable_home": "recagent.wiring.parts",
    "vllm_server": "recagent.wiring.parts",
    "Parts": "recagent.wiring.product",
    "catalog_titles": "recagent.wiring.product",
    "fit_and_save": "recagent.wiring.product",
    "fit_product": "recagent.wiring.product",
    "fitted_fusion": "recagent.wiring.product",
    "fitted_retriever_spec": "recagent.wiring.product",
    "open_parts": "recagent.wiring.product",
    "open_recommender": "recagent.wiring.product",
    "product_ranker": "recagent.wiring.product",
    "product_retriever": "recagent.wiring.product",
    "stored_rows": "recagent.wiring.product",
    "without_llm": "recagent.wiring.product",
    "PRODUCT_RANKER": "recagent.wiring.settings",
    "HybridSpec": "recagent.wiring.settings",
    "LLMSpec": "recagent.wiring.settings",
    "RetrieverSpec": "recagent.wiring.settings",
    "Settings": "recagent.wiring.settings",
    "SourceName": "recagent.wiring.settings",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["PRODUCT_RANKER", "HybridSpec", "LLMSpec", "Parts", "RetrieverSpec",
           "Settings", "SourceName", "build_agent", "build_retriever", "catalog_titles",
           "embedded_server", "engine_model", "fit_and_save", "fit_product",
           "fitted_fusion", "fitted_retriever_spec", "open_embedder",
           "open_interactions", "open_llm", "open_parts", "open_recommender",
           "open_store", "product_ranker", "product_retriever", "stored_rows",
           "usable_home", "vllm_server", "without_llm"]
