"""`python -m gophernet_jax`: the Hydra application (`gophernet_jax.app.main`)."""

import logging
import os
import sys

from gophernet_jax.app import main

main()  # a failure exits through SystemExit, with Python's usual shutdown
if "joblib" not in sys.modules and "submitit" not in sys.modules:
    # Finished in this process (no launcher's workers to shut down), every file written
    # and closed: flush what is buffered and leave without the interpreter's teardown of
    # JAX, XLA and every imported module, which took 0.3-0.5 s of a run that trains in 3.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
