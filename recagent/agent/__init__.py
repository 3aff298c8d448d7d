"""The agent: a plan-first tool loop over the catalog (after InteRecAgent). One plan of
tool calls per chat turn, run over one buffer of item ids, gated, else the rules path."""
