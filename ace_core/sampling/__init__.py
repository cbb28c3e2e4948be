"""Family-neutral sampling: guidance math, seeded noise, flow-matching schedules, the step loop."""
