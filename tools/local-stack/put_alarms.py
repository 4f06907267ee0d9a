"""Creates the template's CloudWatch alarms in the emulator.

The Rust SDK speaks CloudWatch's rpc-v2-cbor protocol, which moto's server
does not route; boto3 (installed with moto) speaks one it does. Reads a JSON
list of evaluated AWS::CloudWatch::Alarm properties on stdin: CloudFormation's
property names are PutMetricAlarm's parameter names, so each list item is
passed as it is.
"""

import json
import sys

import boto3

endpoint, region = sys.argv[1], sys.argv[2]
cloudwatch = boto3.client(
    "cloudwatch",
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
for alarm in json.load(sys.stdin):
    cloudwatch.put_metric_alarm(**alarm)
