"""The one place that turns settings into running parts: store, retriever, LLM client, ranker.

The CLI, chat, the Python API, eval and the benchmarks all build through here, so any
configuration eval can measure (hybrid retrieval, NIR, logprob ranking, a bootstrap, the
vLLM engine) the product can run too, chosen by `Settings`. Nothing here reads the
environment (the CLI does); context managers own lifetimes: an embedded LLM server or a
vLLM engine is started only when no server URL is given, and stopped on exit.
"""

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

__all__ = ["PRODUCT_RANKER", "HybridSpec", "LLMSpec", "Parts", "RetrieverSpec",
           "Settings", "SourceName", "build_agent", "build_retriever", "catalog_titles",
           "embedded_server", "engine_model", "fit_and_save", "fit_product",
           "fitted_fusion", "fitted_retriever_spec", "open_embedder",
           "open_interactions", "open_llm", "open_parts", "open_recommender",
           "open_store", "product_ranker", "product_retriever", "stored_rows",
           "usable_home", "vllm_server", "without_llm"]
