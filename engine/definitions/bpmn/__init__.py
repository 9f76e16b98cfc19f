"""BPMN 2.0 files as workflow definitions: read (``reader``), hardened (``xml``), with
conditions (``conditions``) and timer durations (``durations``) translated, never evaluated."""
