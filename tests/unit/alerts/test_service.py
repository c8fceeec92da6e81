"""``build_alerts`` over real components: the ledger-spill rule follows the ledger writer through
an outage, and switched-off rules are not built."""

from __future__ import annotations

from pathlib import Path

from tests.unit.accounting.test_ledger_writer import FakeLedgerStore, row, writer
from tests.waiting import eventually

from relaygate.accounting import LedgerWriter
from relaygate.alerts import Alerts, build_alerts
from relaygate.observability.window import RequestWindow
from relaygate.settings.alerts import AlertSettings


def alerts_for(settings: AlertSettings, ledger: LedgerWriter | None = None) -> Alerts:
    return build_alerts(
        settings,
        window=RequestWindow(10),
        breakers=list,
        levels=dict,
        keys=list,
        budget_counters=lambda name: None,
        ledger=ledger,
    )


async def test_ledger_spilling_fires_and_resolves_after_the_replay(tmp_path: Path) -> None:
    store = FakeLedgerStore()
    ledger, _ = writer(store, tmp_path)
    await ledger.start()
    engine = alerts_for(AlertSettings(), ledger).engine
    engine.evaluate()
    assert engine.active() == []
    store.down = True
    ledger.record(row(1))
    await eventually(lambda: ledger.stats.spilled == 1)
    engine.evaluate()
    assert [a["rule"] for a in engine.active()] == ["ledger_spill"]
    store.down = False
    await eventually(lambda: len(store.rows) == 1 and ledger.spill.bytes_used == 0)
    engine.evaluate()
    assert engine.active() == []
    assert [(r["rule"], r["status"]) for r in engine.recent()] == [("ledger_spill", "resolved")]
    await ledger.stop()


def test_switched_off_rules_are_not_built() -> None:
    settings = AlertSettings.model_validate(
        {"rules": {"latency": {"enabled": False}, "breaker": {"enabled": False}}}
    )
    alerts = alerts_for(settings)
    names = [rule.name for rule in alerts.engine.rules]
    assert names == ["error_rate", "budget", "degradation"]
