"""farm run -c FILE: a TOML file says what flags say; flags and FARM_* variables override it."""

import json

import pytest
from farm_cli import env, farm, farm_here, usage_error


def settings(*args):
    said = farm_here("run", *args, "--show-config")
    assert said.status == 0, said.stderr
    return json.loads(said.stdout)


def test_the_same_run_from_a_file_and_from_flags_gives_the_same_plan(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": 1}\n')
    (tmp_path / "farm.toml").write_text(
        f"""
target = "http"
url = "http://127.0.0.1:9/users/{{id}}"
header = ["X-Run: toml", "Accept: text/plain"]
drain = true
parallel = 20
rps = 300
feed = "{items}"
max-retries = 3
retry_delay = "100ms"
dead-letter = "{tmp_path / "dead.jsonl"}"
timeout = "5s"
on-agent-loss = "continue"
threshold = ["p99<250ms", "error_rate<1%"]

[params]
connecting = 4
verify = false
"""
    )
    from_file = settings("-c", str(tmp_path / "farm.toml"))
    from_flags = settings(
        "http", "--url", "http://127.0.0.1:9/users/{id}", "--header", "X-Run: toml", "--header", "Accept: text/plain",
        "--drain", "--parallel", "20", "--rps", "300", "--feed", str(items), "--max-retries", "3",
        "--retry-delay", "100ms", "--dead-letter", str(tmp_path / "dead.jsonl"), "--timeout", "5s",
        "--on-agent-loss", "continue", "--param", "connecting=4", "--param", "verify=false",
        "--threshold", "p99<250ms", "--threshold", "error_rate<1%",
    )  # fmt: skip
    assert from_file == from_flags
    assert (
        from_file["parallel"] == 20
        and from_file["max_retries"] == 3
        and from_file["farm"]["on_agent_loss"] == "continue"
    )


def test_flags_and_environment_override_the_file(tmp_path, monkeypatch):
    (tmp_path / "farm.toml").write_text('target = "noop"\nrps = 100\nduration = "2s"\n')
    assert settings("-c", str(tmp_path / "farm.toml"), "--rps", "250")["profile"] == [[2.0, 250.0, 250.0]]
    monkeypatch.setenv("FARM_RUN_RPS", "300")
    assert settings("-c", str(tmp_path / "farm.toml"))["profile"] == [[2.0, 300.0, 300.0]]
    assert settings("noop", "-d", "1s")["profile"] == [[1.0, 300.0, 300.0]]


@pytest.mark.slow
def test_a_real_process_reads_the_file_and_the_environment(tmp_path):
    (tmp_path / "farm.toml").write_text('target = "noop"\nrps = 100\nduration = "2s"\n')
    p = farm("run", "-c", str(tmp_path / "farm.toml"), "--show-config", env=env(FARM_RUN_RPS="300"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["profile"] == [[2.0, 300.0, 300.0]]


@pytest.mark.parametrize(
    "text, message",
    [
        ('target = "noop"\nrps = 10\n\nbogus = 1\n', "farm.toml line 4: unknown key 'bogus'"),
        ('target = "noop"\nrps = "fast"\n', "farm.toml line 2: rps must be a number, got 'fast'"),
        ('target = "noop"\ndrain = "yes"\n', "farm.toml line 2: drain must be true or false"),
        ('target = "noop"\n[params]\nms = [1, 2]\n', "farm.toml line 3: params.ms must be text or a number"),
        ("target = noop\n", "farm.toml is not TOML"),
        (b'target = "\xff"\n', "farm.toml is not TOML: it is not UTF-8 text"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_and_its_line(tmp_path, text, message):
    (tmp_path / "farm.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    assert message in usage_error("run", "-c", str(tmp_path / "farm.toml"), "-d", "1s")
