"""A non-editable build must carry the prompt templates and load them from the wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_and_renders_from_them(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("recagent-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.name for p in (REPO / "prompts").glob("*.j2"))
    assert templates and all(f"prompts/{t}" in names for t in templates)
    assert "recagent/cli/main.py" in names and "retrieval/__init__.py" in names
    assert "recagent/llm/backends/gguf_to_hf.py" in names  # run by the vLLM environment's python
    assert not any(n.startswith("tests/") for n in names)

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import recagent.llm.prompts as p; "
            "assert p.__file__.startswith(sys.argv[1]); "
            "r = p.PromptLibrary().render('rank_zero_shot', history=[], "
            "candidates=[{'label': 'A', 'text': 'x'}], k=1, explain=True, demonstrations=[]); "
            "print(r.messages[-1]['content'])")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(site)], cwd=tmp_path,
                         check=True, capture_output=True,
                         text=True)
    assert "[A] x" in out.stdout
