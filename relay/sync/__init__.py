"""The engine: read source records, plan, find on the target, write exactly once, close the loop."""
