//! deploy/s3-lifecycle.json is applied the way its README says (the AWS CLI's
//! put-bucket-lifecycle-configuration, here through boto3, the library the CLI is built
//! on: the same parameter validation) to a moto server, and read back unchanged. moto
//! checks the rules' shape but not every value, so the storage classes and statuses are
//! also checked against the S3 service model that boto3 ships.

use std::path::Path;

use onair_infra::testing::MotoS3;

const APPLY_AND_READ_BACK: &str = r#"
import boto3, json, sys
endpoint, bucket, path = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
with open(path) as f:
    config = json.load(f)
model = s3.meta.service_model
classes = model.shape_for("TransitionStorageClass").enum
statuses = model.shape_for("ExpirationStatus").enum
for rule in config["Rules"]:
    assert rule["Status"] in statuses, rule
    for transition in rule.get("Transitions", []):
        assert transition["StorageClass"] in classes, transition
s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=config)
rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
assert rules == config["Rules"], json.dumps(rules, indent=1)
print(len(rules))
"#;

#[tokio::test]
#[cfg_attr(not(onair_test_s3), ignore = "set ONAIR_TEST_MOTO_SERVER")]
async fn the_deployed_lifecycle_rules_are_accepted_by_s3() {
    let moto = MotoS3::start().await;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/s3-lifecycle.json");
    let output = tokio::process::Command::new(moto.python())
        .args(["-c", APPLY_AND_READ_BACK, moto.endpoint(), moto.bucket()])
        .arg(&rules)
        .output()
        .await
        .expect("moto's Python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // vod/ and clips/ to cheaper storage, live/ leftovers, incomplete uploads.
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "4");
}
