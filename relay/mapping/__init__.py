"""Pure: the integrator's mapping specs and transforms."""
