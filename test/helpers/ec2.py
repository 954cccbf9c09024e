"""Looks at (and pokes) the EC2 emulator from tests, with boto3 on the
system Python. Usage: ec2.py ENDPOINT instances | launch-untagged | launch KEY=VALUE...
Prints JSON. Talks only to ENDPOINT, with placeholder credentials."""
import json
import sys

import boto3

endpoint, command = sys.argv[1], sys.argv[2]
ec2 = boto3.client(
    "ec2",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)

if command == "instances":
    out = []
    reservations = [r for page in ec2.get_paginator("describe_instances").paginate() for r in page["Reservations"]]
    for reservation in reservations:
        for i in reservation["Instances"]:
            out.append({
                "id": i["InstanceId"],
                "state": i["State"]["Name"],
                "ip": i.get("PublicIpAddress"),
                "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                "user_data": ec2.describe_instance_attribute(
                    InstanceId=i["InstanceId"], Attribute="userData"
                ).get("UserData", {}).get("Value"),
            })
    print(json.dumps(out))
elif command in ("launch-untagged", "launch"):
    # An instance launched the way someone else would: without our tags, or with only the KEY=VALUE tags given.
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": k, "Value": v} for k, v in (a.split("=", 1) for a in sys.argv[3:])]
    spec = {"TagSpecifications": [{"ResourceType": "instance", "Tags": tags}]} if tags else {}
    i = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro", **spec)["Instances"][0]
    described = ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
    print(json.dumps({"id": i["InstanceId"], "ip": described.get("PublicIpAddress")}))
else:
    sys.exit(f"unknown command {command}")
