"""agentlog.schemas: the event contract.

* ``avro/*.avsc``: the wire contract, one self-contained Avro schema per event;
* :mod:`agentlog.schemas.events`: the same events as frozen dataclasses (pure
  Python, safe to import from the decision core);
* :mod:`agentlog.schemas.catalogue`: the schema files, parsed and fingerprinted;
* :mod:`agentlog.schemas.compat`: the Avro schema-resolution checker used to
  keep every schema compatible with its history.

This package imports nothing on its own, so importing ``events`` never loads fastavro.
"""
