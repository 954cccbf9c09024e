"""Looks at (and pokes) the EC2 emulator from tests, with boto3 on the
system Python. Usage: ec2.py ENDPOINT instances | launch-untagged
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
elif command == "launch-untagged":
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    i = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro")["Instances"][0]
    described = ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
    print(json.dumps({"id": i["InstanceId"], "ip": described.get("PublicIpAddress")}))
else:
    sys.exit(f"unknown command {command}")
