import CCurl

// C callbacks cannot capture context: these are plain functions that find
// their `CurlTransfer` through the userdata pointer (CURLOPT_WRITEDATA /
// CURLOPT_HEADERDATA). The transfer is kept alive by the driver's list of
// running transfers until its handle is removed from the multi handle, so
// the unretained pointer is valid whenever curl calls these (on the curl thread).

/// CURLOPT_HEADERFUNCTION: one complete header line per call.
let curlHeaderCallback: curl_write_callback = { data, size, count, userdata in
    let bytes = size * count
    guard let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: bytes))
    return bytes
}

/// CURLOPT_WRITEFUNCTION: body bytes (never compressed: no Accept-Encoding is set).
let curlBodyCallback: curl_write_callback = { data, size, count, userdata in
    let bytes = size * count
    guard let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: bytes))
    return bytes
}

/// CURLOPT_PREREQFUNCTION: the request is about to be sent, on a new or a reused connection.
/// Aborted when it would be libcurl's own second send of a call the provider may have worked on.
let curlPrerequestCallback: curl_prereq_callback = { clientp, _, _, _, _ in
    guard let clientp else { return CURL_PREREQFUNC_OK }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(clientp).takeUnretainedValue()
    return transfer.maySend() ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT
}
