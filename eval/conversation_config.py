"""Configs of the conversation protocols: `conversation` (recorded dialogues, iEvaLM's
counting) and `simulation` (a simulated user with a hidden target).

Separate from eval/config.py's EvalConfig (MovieLens leave-one-out): a dialogue set has
turns, not users. `recagent eval` and `python -m eval.recompute` pick this loader when the
TOML's `[protocol] kind` is one of these. Unknown keys are errors, as everywhere.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval.toml_config import load_toml_model
from recagent.wiring import LLMSpec

CONVERSATION_KINDS = ("conversation", "simulation")
ConversationRowName = Literal["popularity", "comention_knn", "text", "product", "chat",
                              "chat_llm", "agent"]
SimulationRowName = Literal["popularity", "chat", "chat_llm", "chat_llm_user", "agent"]


def _conversation_rows() -> list[ConversationRowName]:
    return ["popularity", "comention_knn", "text", "product", "chat"]


def _simulation_rows() -> list[SimulationRowName]:
    return ["popularity", "chat"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DialoguesDataset(_Strict):
    """A dialogue set by path: change only these to run another one."""

    kind: Literal["dialogues"]
    catalog: Path
    """A catalog: a ReDial folder (id2info.json), or a .jsonl/.csv catalog file."""
    train: Path
    """Dialogue turns (the test format) that the rows may learn from: popularity,
    co-mentions, the product's interactions and fit."""
    test: Path
    likes: Path | None = None
    """Optional: a ReDial folder whose raw dialogues (valid_data.jsonl) say which movies
    each seeker liked; one history per dialogue. Without it, each train dialogue's
    mentioned items form one history (bare interactions)."""


class MovieLensDataset(_Strict):
    kind: Literal["ml-100k"]
    path: Path
    positive_threshold: float = 4.0


class PublishedRow(_Strict):
    """A number someone else measured, printed beside ours and marked as published."""

    system: str
    source: str
    protocol: str
    recall_1: float | None = None
    recall_10: float | None = None
    recall_50: float | None = None


class ConversationProtocol(_Strict):
    kind: Literal["conversation"]
    k: Annotated[int, Field(ge=50, le=100)] = 50
    rows: list[ConversationRowName] = Field(default_factory=_conversation_rows)
    turns: Annotated[int, Field(ge=1)] | None = None
    """Rows without an LLM run on every test turn unless this caps them (a seeded sample
    of dialogues, whole dialogues kept); TOML "all" = every turn."""
    llm_dialogues: Annotated[int, Field(ge=1)] | None = 20
    """The LLM rows (chat_llm, agent) run on this seeded sample of the test dialogues (all
    their turns); "all": the same turns as every other row."""
    judgement: str
    """The rule the run is judged by, written before the run (copied into the report)."""
    min_recall_10: float = 0.22
    min_recall_50: float = 0.42
    judged_row: str = "chat"
    """The shipped configuration's row, the one the rule is checked on."""

    @field_validator("turns", "llm_dialogues", mode="before")
    @classmethod
    def _all(cls, value: object) -> object:
        return None if value == "all" else value


class SimulationProtocol(_Strict):
    kind: Literal["simulation"]
    episodes: Annotated[int, Field(ge=1)] = 200
    max_turns: Annotated[int, Field(ge=1, le=10)] = 5
    k: Annotated[int, Field(ge=1, le=50)] = 10
    """Items shown per turn; success = the target among them."""
    rows: list[SimulationRowName] = Field(default_factory=_simulation_rows)
    opening_items: tuple[int, int] = (0, 3)
    """MovieLens: the user opens with this many (min, max) of its own liked items."""
    llm_episodes: Annotated[int, Field(ge=1)] = 20
    judgement: str


class ConversationConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")]
    seed: int = 0
    dataset: DialoguesDataset | MovieLensDataset = Field(discriminator="kind")
    protocol: ConversationProtocol | SimulationProtocol = Field(discriminator="kind")
    published: list[PublishedRow] = Field(default_factory=list)
    llm: LLMSpec | None = None
    """The model of the chat_llm row (and of the LLM-worded simulated user)."""
    fit_users: Annotated[int, Field(ge=10)] = 200
    """The product row's fit: validation users held out of the train histories."""


def protocol_kind(path: Path) -> str | None:
    """The `[protocol] kind` of a TOML config, None if it has none (or is not TOML)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    kind = (data.get("protocol") or {}).get("kind")
    return kind if isinstance(kind, str) else None


def load_conversation_config(path: Path) -> ConversationConfig:
    """Read and validate; every problem is a ConfigError naming the file."""
    return load_toml_model(path, ConversationConfig)
