"""Pokes the EC2 emulator from tests where harness.ts's ec2.py has no
command for it, with boto3 on the system Python. Prints JSON.
Usage: ec2_tools.py ENDPOINT launch KEY=VALUE...   (an instance with these tags only)
Talks only to ENDPOINT, with placeholder credentials."""
import json
import sys

import boto3

endpoint, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
ec2 = boto3.client(
    "ec2",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)

if command == "launch":
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": k, "Value": v} for k, v in (a.split("=", 1) for a in args)]
    i = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                          TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]
    described = ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
    print(json.dumps({"id": i["InstanceId"], "ip": described.get("PublicIpAddress")}))
else:
    sys.exit(f"unknown command {command}")
