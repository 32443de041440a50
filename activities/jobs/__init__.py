"""Jobs that run in a fresh child process (OCP, bpy): a crash there cannot take the worker down."""
