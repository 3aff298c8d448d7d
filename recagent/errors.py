"""recagent's error tree, re-exported from the ground floor (`retrieval.errors`), where it is
defined so that retrieval can raise the same errors the facade documents."""

from retrieval.errors import (
    ConfigError,
    DataFormatError,
    DeadlineError,
    EmptyCatalogError,
    IncompleteCatalogError,
    LLMError,
    ModelArtifactError,
    RecagentError,
    ResponseError,
    TransportError,
    UnknownItemError,
)

__all__ = ["ConfigError", "DataFormatError", "DeadlineError", "EmptyCatalogError",
           "IncompleteCatalogError", "LLMError",
           "ModelArtifactError", "RecagentError", "ResponseError", "TransportError",
           "UnknownItemError"]
