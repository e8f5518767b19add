/* minikv gateway: S3 error codes, their HTTP status and default message.
 * The XML body is <Error><Code/><Message/><Resource/><RequestId/></Error>. */
#ifndef MKV_S3GW_S3ERR_H
#define MKV_S3GW_S3ERR_H

#include "minikv/common.h"

#define MKV_S3_ERRORS(X)                                                                     \
    X(OK, 200, "OK", "")                                                                     \
    X(ACCESS_DENIED, 403, "AccessDenied", "Access Denied")                                   \
    X(BAD_DIGEST, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.") \
    X(BUCKET_EXISTS, 409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.") \
    X(BUCKET_NOT_EMPTY, 409, "BucketNotEmpty", "The bucket you tried to delete is not empty") \
    X(ENTITY_TOO_LARGE, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.") \
    X(ENTITY_TOO_SMALL, 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.") \
    X(EXPIRED_TOKEN, 400, "ExpiredToken", "The provided token has expired.")                 \
    X(INCOMPLETE_BODY, 400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.") \
    X(INTERNAL, 500, "InternalError", "We encountered an internal error. Please try again.") \
    X(INVALID_ACCESS_KEY, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.") \
    X(INVALID_ARGUMENT, 400, "InvalidArgument", "Invalid Argument")                          \
    X(INVALID_BUCKET_NAME, 400, "InvalidBucketName", "The specified bucket is not valid.")  \
    X(INVALID_DIGEST, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.")  \
    X(INVALID_PART, 400, "InvalidPart", "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.") \
    X(INVALID_PART_ORDER, 400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered by part number.") \
    X(INVALID_RANGE, 416, "InvalidRange", "The requested range is not satisfiable")         \
    X(INVALID_REQUEST, 400, "InvalidRequest", "Invalid Request")                            \
    X(INVALID_URI, 400, "InvalidURI", "Couldn't parse the specified URI.")                  \
    X(KEY_TOO_LONG, 400, "KeyTooLongError", "Your key is too long")                         \
    X(MALFORMED_XML, 400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.") \
    X(METHOD_NOT_ALLOWED, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.") \
    X(MISSING_CONTENT_LENGTH, 411, "MissingContentLength", "You must provide the Content-Length HTTP header.") \
    X(MISSING_SECURITY_HEADER, 400, "MissingSecurityHeader", "Your request is missing a required header.") \
    X(NO_SUCH_BUCKET, 404, "NoSuchBucket", "The specified bucket does not exist")           \
    X(NO_SUCH_KEY, 404, "NoSuchKey", "The specified key does not exist.")                   \
    X(NO_SUCH_UPLOAD, 404, "NoSuchUpload", "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.") \
    X(NOT_IMPLEMENTED, 501, "NotImplemented", "A header or query you provided requested a function that is not implemented.") \
    X(NOT_MODIFIED, 304, "NotModified", "Not Modified")                                     \
    X(PRECONDITION_FAILED, 412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.") \
    X(REQUEST_TIME_TOO_SKEWED, 403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.") \
    X(REQUEST_TIMEOUT, 400, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.") \
    X(SIGNATURE_MISMATCH, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.") \
    X(AUTH_HEADER_MALFORMED, 400, "AuthorizationHeaderMalformed", "The authorization header is malformed.") \
    X(AUTH_QUERY_MALFORMED, 400, "AuthorizationQueryParametersError", "The authorization query parameters are malformed.") \
    X(BAD_CHECKSUM, 400, "BadDigest", "The checksum you specified did not match what we received.") \
    X(INVALID_CHUNK_SIZE, 403, "InvalidChunkSizeError", "Only the last chunk is allowed to have a size less than 8192 bytes") \
    X(CONTENT_SHA256_MISMATCH, 400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.") \
    X(INSUFFICIENT_STORAGE, 503, "InsufficientStorage", "There is not enough free space on the storage servers to complete the request.") \
    X(SERVICE_UNAVAILABLE, 503, "ServiceUnavailable", "Please reduce your request rate or retry later.") \
    X(SLOW_DOWN, 503, "SlowDown", "Please reduce your request rate.")                       \
    X(KEY_CONFLICT, 409, "KeyConflict", "The key would make a file and a directory share a name (a key cannot be both an object and a prefix of other keys in minikv).") \
    X(INVALID_STORAGE_CLASS, 400, "InvalidStorageClass", "The storage class you specified is not valid.") \
    X(NO_SUCH_VERSION, 404, "NoSuchVersion", "The specified version does not exist.")

enum mkv_s3_error {
#define MKV_S3_ENUM(id, status, code, msg) MKV_S3_##id,
    MKV_S3_ERRORS(MKV_S3_ENUM)
#undef MKV_S3_ENUM
    MKV_S3__COUNT
};

MKV_API int mkv_s3_error_status(enum mkv_s3_error e);
MKV_API const char *mkv_s3_error_code(enum mkv_s3_error e);
MKV_API const char *mkv_s3_error_message(enum mkv_s3_error e);

#endif /* MKV_S3GW_S3ERR_H */
