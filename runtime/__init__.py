"""The runtime: what generated code imports (``messages``), the integration engine
(``messaging``, ``lifecycles``, ``store`` and the modules beside them), and the reference
simulators (``sim``), which the engine loads by name from its configuration (docs/runtime.md,
"The tree")."""
