"""Populate: compute what is pending for computed and imported tables.

planner (pending keys, in SQL) -> reservations (claims with leases) -> make (inputs, call, checks)
-> writer (atomic master + parts) -> executor (serial loop, worker processes, progress, Ctrl-C).
"""
