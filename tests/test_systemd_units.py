"""The shipped unit files parse and carry the settings the README promises."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's format: sections, repeated keys allowed, '#' and ';' comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}:{number}: key outside a section"
        assert "=" in line, f"{path.name}:{number}: not KEY=VALUE"
        key, value = line.split("=", 1)
        assert key.strip() == key and key.isidentifier() or key.replace("_", "").isalnum(), key
        current.setdefault(key, []).append(value)
    return sections


def test_system_unit() -> None:
    unit = parse_unit(ROOT / "systemd" / "btd.service")
    service = unit["Service"]
    expect = {
        "Type": "notify",
        "User": "btd",
        "StateDirectory": "btd",
        "RuntimeDirectory": "btd",
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "PrivateTmp": "true",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestartPreventExitStatus": "78",
    }
    for key, value in expect.items():
        assert service[key] == [value], key
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert int(service["WatchdogSec"][0]) > 0
    assert "/var/lib/btd" in service["ReadWritePaths"][0]
    assert service["ExecStart"][0].startswith("/")
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_user_unit() -> None:
    unit = parse_unit(ROOT / "systemd" / "btd-user.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "User" not in service
    assert unit["Install"]["WantedBy"] == ["default.target"]


def test_sysusers_declares_the_user() -> None:
    lines = [
        line
        for line in (ROOT / "systemd" / "btd.sysusers").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines and lines[0].split()[:2] == ["u", "btd"]


UNITS = ("btd.service", "btd-user.service")


def test_umask_agrees_with_the_config_default() -> None:
    from btd.core.config_schema import DEFAULT_UMASK, format_octal

    for name in UNITS:
        service = parse_unit(ROOT / "systemd" / name)["Service"]
        assert service.get("UMask", [format_octal(DEFAULT_UMASK)]) == [format_octal(DEFAULT_UMASK)]


def test_documentation_points_at_files_the_readme_installs() -> None:
    """Each ``file://`` URI names a repository file that README's install steps copy there."""
    readme = (ROOT / "README.md").read_text()
    for name in UNITS:
        uris = " ".join(parse_unit(ROOT / "systemd" / name)["Unit"]["Documentation"]).split()
        assert uris, name
        for uri in uris:
            assert uri.startswith(("file:///", "file://%h/", "https://", "man:")), uri
            if not uri.startswith("file://"):
                continue
            path = uri.removeprefix("file://").replace("%h", "~")
            folder, _, filename = path.rpartition("/")
            assert (ROOT / filename).is_file(), uri
            assert f"-t {folder} {filename}" in readme, f"README does not install {uri}"
