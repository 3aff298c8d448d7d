"""Explanations as checked claims: evidence first, then a sentence that the evidence backs.

`evidence` gathers the facts behind each recommended item, `wording` has the LLM write a
sentence per item from them, `checker` refuses a sentence that says more than they do,
`templates` writes one from the evidence instead, and `Explainer` runs the four for a list.
"""

from recagent.explain.evidence import CoLikes as CoLikes
from recagent.explain.explainer import Explained as Explained
from recagent.explain.explainer import Explainer as Explainer
