import CCurl
#if canImport(Glibc)
import Glibc
#endif

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
/// HTTP/1.1: aborted when it would be libcurl's own second send of a call the provider may have
/// worked on. HTTP/2: tells the connection ramp where the call went.
let curlPrerequestCallback: curl_prereq_callback = { clientp, remoteIP, localIP, _, localPort in
    guard let clientp else { return CURL_PREREQFUNC_OK }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(clientp).takeUnretainedValue()
    let sent = transfer.maySend { ConnectionRamp<CurlTransfer>.Address(
        remoteIP: remoteIP.map { String(cString: $0) } ?? "", localIP: localIP.map { String(cString: $0) } ?? "",
        localPort: localPort) }
    return sent ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT
}

/// CURLOPT_SOCKOPTFUNCTION (HTTP/2 transfers): curl made a socket for a new connection the
/// transfer needs (`ConnectionRamp`), which may refuse it (the transfer then fails).
let curlSocketOpenedCallback: curl_sockopt_callback = { clientp, fd, purpose in
    guard let clientp, purpose == CURLSOCKTYPE_IPCXN else { return CURL_SOCKOPT_OK }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(clientp).takeUnretainedValue()
    return transfer.driver.socketOpened(fd, by: transfer) ? CURL_SOCKOPT_OK : CURL_SOCKOPT_ERROR
}

/// CURLOPT_CLOSESOCKETFUNCTION (HTTP/2 transfers): curl is done with a connection's socket. The
/// connection keeps the pointer of the transfer that opened it, which may be long gone: so it is
/// the driver's (which outlives every connection: they close in `curl_multi_cleanup`).
let curlSocketClosedCallback: curl_closesocket_callback = { clientp, fd in
    if let clientp {
        Unmanaged<CurlDriver>.fromOpaque(clientp).takeUnretainedValue().socketClosed(fd)
    }
    return close(fd)
}
