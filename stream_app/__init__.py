"""The Faust stream app: routing, single flight, result tables and the HTTP view (pipeline issue)."""
