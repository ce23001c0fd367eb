"""bitsweep_client: submit quantization sweeps to a bitsweep coordinator and read their results.

    from bitsweep_client import Client
    with Client("127.0.0.1:50051") as c:
        sweep_id = c.submit("examples/sweeps/demo.yaml")
        for sweep in c.watch(sweep_id):
            print(sweep)
        rows = c.results(sweep_id)  # a pandas.DataFrame when pandas is installed

The gRPC stubs are generated from proto/ when bitsweep is built: import this package from
build/clients/python (docs/python-client.md).
"""

from bitsweep_client.client import Client, Submission, Sweep
from bitsweep_client.errors import BitsweepError

__all__ = ["BitsweepError", "Client", "Submission", "Sweep"]
__version__ = "0.1.0"
