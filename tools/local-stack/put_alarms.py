"""Creates the template's CloudWatch alarms and dashboards in the emulator.

The Rust SDK speaks CloudWatch's rpc-v2-cbor protocol, which moto's server
does not route; boto3 (installed with moto) speaks one it does. Reads a JSON
object on stdin: "alarms", the evaluated AWS::CloudWatch::Alarm properties
(CloudFormation's property names are PutMetricAlarm's parameter names, so each
is passed as it is), and "dashboards", the evaluated AWS::CloudWatch::Dashboard
properties (DashboardName and DashboardBody, PutDashboard's parameters).
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
resources = json.load(sys.stdin)
for alarm in resources["alarms"]:
    cloudwatch.put_metric_alarm(**alarm)
for dashboard in resources["dashboards"]:
    cloudwatch.put_dashboard(**dashboard)
