"""spark-submit entry point: the same options and exit codes as `cohortlake validate`.

    spark-submit --py-files dist/cohortlake.zip jobs/validate.py --lake URI [--suite NAME]
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("validate", sys.argv[1:], __file__))
