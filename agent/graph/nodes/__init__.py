"""The graph's nodes: one small function per step, each calling tools and returning a state update."""
