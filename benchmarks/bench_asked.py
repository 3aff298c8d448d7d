"""How often the recommender's next suggestion is a title the seeker just named, by whether
the agent reads it as asked about (recagent/agent/catalog.py `asked`) or stated.

ReDial's validation turns only (the test turns are for judged runs): each turn's last seeker
message, its titles (the turn's entities written in it), and the recommender's answer.
    .venv/bin/python benchmarks/bench_asked.py [../shared/data/redial/valid_data_processed.jsonl]
"""
import json
import sys

from recagent.agent.catalog import asked

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/redial/valid_data_processed.jsonl"
counts = {"asked": [0, 0], "stated": [0, 0]}
with open(path, encoding="utf-8") as f:
    for line in f:
        turn = json.loads(line)
        message = turn["context"][-1]
        titles = sorted({e for e in turn["entity"] if e.endswith(")") and e in message},
                        key=message.find)
        for title in titles:
            kind = "asked" if asked(title, message, titles) else "stated"
            counts[kind][0] += title in turn["rec"]
            counts[kind][1] += 1
for kind, (suggested, named) in counts.items():
    print(f"{kind}: {suggested} of {named} suggested next ({suggested / max(named, 1):.1%})")
