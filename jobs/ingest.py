"""spark-submit entry point: the same options and exit codes as `cohortlake ingest`.

    spark-submit --py-files dist/cohortlake.zip jobs/ingest.py --layout seer-medicare --raw RAW --lake URI
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("ingest", sys.argv[1:], __file__))
