"""VLLMServer and the GGUF conversion without vLLM: the command, and failures that say why.

The real server is tested in tests/test_vllm.py; these need only this environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recagent.errors import ConfigError, ModelArtifactError, TransportError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.vllm_model import VLLMModelPreparer, convert
from recagent.llm.backends.vllm_server import VLLMServer


def server(**overrides: object) -> VLLMServer:
    args: dict[str, object] = {"python": Path(sys.executable), "model": "/models/m",
                               "served_model_name": "m", "port": 8011}
    args.update(overrides)
    return VLLMServer(**args)  # type: ignore[arg-type]


def test_cpu_command_runs_eager_in_float32_with_bound_threads() -> None:
    s = server(cpu_cores="0-1", kv_cache_gib=2)
    cmd = s.command(8011)
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    assert "--model /models/m --served-model-name m" in joined and "--port 8011" in joined
    assert "--dtype float32" in joined and "--enforce-eager" in cmd
    assert "--enable-prefix-caching" not in cmd
    env = s.environment()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_gpu_command_keeps_vllm_defaults_and_caches_prefixes() -> None:
    s = server(device="gpu", extra_args=["--gpu-memory-utilization", "0.8"])
    cmd = s.command(9000)
    assert "--enable-prefix-caching" in cmd and "--enforce-eager" not in cmd
    assert "--dtype" not in cmd and cmd[-2:] == ["--gpu-memory-utilization", "0.8"]
    assert not any(k.startswith("VLLM_CPU") for k in s.environment())


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        server(device="tpu")
    with pytest.raises(ConfigError, match="make vllm-venv"):
        server(python=tmp_path / "missing" / "python").start()


def test_a_server_that_dies_at_start_reports_the_end_of_its_log(tmp_path: Path) -> None:
    """This environment's python has no vllm: the child exits, and the error quotes why."""
    s = server(port=None, start_timeout_s=120)
    with pytest.raises(TransportError, match="No module named 'vllm'") as failed:
        s.start()
    assert "exited with code 1" in str(failed.value)
    assert not s.running
    assert s.log_path is not None and str(s.log_path) in str(failed.value)
    assert s.log_path.is_file()  # a failed start keeps the temporary log it names
    s.log_path.unlink()


def test_a_failed_conversion_leaves_no_folder_behind(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    target = tmp_path / "models" / "bogus"
    with pytest.raises(ModelArtifactError, match="failed"):
        convert(bogus, target, python=Path(sys.executable), timeout_s=120)
    assert list((tmp_path / "models").iterdir()) == []


def test_preparing_without_the_vllm_python_says_how_to_build_it(tmp_path: Path) -> None:
    preparer = VLLMModelPreparer(ArtifactStore(tmp_path / "artifacts", allow_fetch=False),
                                 tmp_path / "models", python=tmp_path / "no-venv" / "python")
    assert preparer.folder_for("smollm2-135m").name.startswith("smollm2-135m-")
    with pytest.raises(ConfigError, match="make vllm-venv"):  # checked before any download
        preparer.prepare("smollm2-135m")
    with pytest.raises(ConfigError, match="unknown preset"):
        preparer.prepare("gpt-5")
    assert not (tmp_path / "models").exists()


def test_a_prepared_folder_is_reused_without_converting(tmp_path: Path) -> None:
    preparer = VLLMModelPreparer(ArtifactStore(tmp_path / "artifacts", allow_fetch=False),
                                 tmp_path / "models", python=tmp_path / "no-venv" / "python")
    preparer.folder_for("smollm2-135m").mkdir(parents=True)
    prepared = preparer.prepare("smollm2-135m")
    assert prepared.folder == preparer.folder_for("smollm2-135m")
    assert prepared.converted_s == 0.0
