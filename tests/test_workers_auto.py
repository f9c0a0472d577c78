"""``--workers auto``: one worker a usable CPU, counted as ingress-nginx counts ``worker-processes: auto``
(the CPUs the process may run on, or the cgroup's CPU quota rounded up)."""

from __future__ import annotations

import pytest

from ingressd.workers import parse_workers, usable_cpus


def _affinity(count):
    return lambda pid: set(range(count))


def _cgroup(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("files, cpus", [
    ({}, 8),  # no cgroup files: the affinity mask
    ({"cpu.max": "max 100000\n"}, 8),  # v2, no limit
    ({"cpu.max": "200000 100000\n"}, 2),  # v2: two CPUs' worth
    ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up, as ingress-nginx does
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8),  # v1, no limit
    ({"cpu.max": "garbage"}, 8),
])
def test_usable_cpus(tmp_path, files, cpus):
    assert usable_cpus(_cgroup(tmp_path, files), affinity=_affinity(8)) == cpus


def test_usable_cpus_is_at_least_one(tmp_path):
    assert usable_cpus(str(tmp_path), affinity=_affinity(0)) == 1


def test_usable_cpus_on_this_machine_is_a_count():
    assert usable_cpus() >= 1


@pytest.mark.parametrize("value, workers", [("auto", 3), (" auto ", 3), ("1", 1), ("4", 4), (2, 2)])
def test_parse_workers(value, workers):
    assert parse_workers(value, cpus=lambda: 3) == workers


@pytest.mark.parametrize("value, message", [("0", "--workers must be at least 1"), ("-2", "--workers must be at least 1"),
                                            ("two", "invalid literal")])
def test_parse_workers_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        parse_workers(value, cpus=lambda: 3)


@pytest.mark.parametrize("running, warned", [(None, False), (1, True)])
def test_the_configmaps_auto_is_the_same_as_the_servers_count(running, warned):
    from ingressd.compat.check import server_settings_from
    from ingressd.config.nginx_configmap import read_configmap
    from ingressd.plugin_manager import load_plugins

    plugins = load_plugins()
    settings = dict(server_settings_from(()))
    settings["workers"] = usable_cpus() if running is None else usable_cpus() + running
    reading = read_configmap("ingress-nginx/ingress-nginx-controller", {"worker-processes": "auto"},
                             plugins.annotations, {o.name: o.coerce for o in plugins.options}, settings)
    assert any("worker-processes: 'auto' needs a restart" in line for line in reading.warnings) is warned
