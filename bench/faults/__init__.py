"""The fault suite: real processes, a steady load of real bills, one fault in the middle,
and a count of what came out (``python -m bench.faults``)."""
