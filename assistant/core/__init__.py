"""The core: what every part of the assistant shares and nothing else depends on.

Messages (small frozen dataclasses stamped with their turn) travel between stages; events tell the
outside world (views, logs, reports) what happened; ``Stage`` is the one stage interface and
``run_stage`` its thread loop; ``Pipeline`` wires a source and stages with queues; ``TurnScope``
cancels a turn by number; ``core.engines`` names what a stage needs of a model. Imports nothing from
the package but ``assistant.config``.
"""
