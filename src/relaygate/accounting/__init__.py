"""Money: prices, FX, the usage ledger, budgets, reports and bills."""

from relaygate.accounting.budget import Budgets, Hold, LocalBudgets, MonthClock, has_budget
from relaygate.accounting.budget_carry import UnwrittenSpend
from relaygate.accounting.budget_shared import SharedBudgets
from relaygate.accounting.fx import FxTable, UnknownCurrencyError
from relaygate.accounting.ledger import LedgerStats, LedgerWriter
from relaygate.accounting.pricing import Price, PriceBook
from relaygate.accounting.reports import (
    Bill,
    BillLine,
    ReportLine,
    UsageReport,
    check_group_by,
    month_bill,
    parse_month,
    usage_report,
)
from relaygate.accounting.service import Accounting, build_accounting, ledger_row
from relaygate.accounting.spill import SpillFile
from relaygate.accounting.usage import billable_usage

__all__ = [
    "Accounting",
    "Bill",
    "BillLine",
    "Budgets",
    "FxTable",
    "Hold",
    "LedgerStats",
    "LedgerWriter",
    "LocalBudgets",
    "MonthClock",
    "Price",
    "PriceBook",
    "ReportLine",
    "SharedBudgets",
    "SpillFile",
    "UnknownCurrencyError",
    "UnwrittenSpend",
    "UsageReport",
    "billable_usage",
    "build_accounting",
    "check_group_by",
    "has_budget",
    "ledger_row",
    "month_bill",
    "parse_month",
    "usage_report",
]
