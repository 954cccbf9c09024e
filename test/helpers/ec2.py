"""Looks at (and pokes) the EC2 emulator from tests, with boto3 on the
system Python. Usage: ec2.py ENDPOINT instances [TASK_ID] | launch-untagged | launch KEY=VALUE...
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
    # With a TASK_ID: only that task's instances, with their user data (one
    # more call each). Without: every instance, without it (one call a page,
    # however many instances moto holds).
    task_id = sys.argv[3] if len(sys.argv) > 3 else None
    filters = [{"Name": "tag:TaskId", "Values": [task_id]}] if task_id else []
    out = []
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    for reservation in (r for page in pages for r in page["Reservations"]):
        for i in reservation["Instances"]:
            out.append({
                "id": i["InstanceId"],
                "state": i["State"]["Name"],
                "ip": i.get("PublicIpAddress"),
                "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                "user_data": ec2.describe_instance_attribute(
                    InstanceId=i["InstanceId"], Attribute="userData"
                ).get("UserData", {}).get("Value") if task_id else None,
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
