"""Tuning: the read phase, the planners, the change types of each subsystem, the journal, the engine.

Each subsystem module (sysctl, pools, mounts, ksm, thp, files) owns its knobs end to
end: the change type that reads, writes, verifies and undoes them, and the planner
that orders them. change.py is the floor they all stand on; engine.py drives them.
"""
