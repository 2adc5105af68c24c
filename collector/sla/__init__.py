"""The SLA engine: contracts as data (policies), and what a service item's month owes."""
