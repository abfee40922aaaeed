import Testing
@testable import Metering

@Suite struct ErrorPageTextTests {
    func text(_ page: String, html: Bool = true, limit: Int = 300) -> String {
        ErrorPageText.of(Array(page.utf8), html: html, limit: limit)
    }

    @Test func markupTitleScriptsStylesAndCommentsAreDropped() {
        let page = """
            <HTML><HEAD><TITLE>502 Bad Gateway</TITLE>
            <STYLE type="text/css">h1 { font: 1em }</STYLE><Script>if (a < b) { x = "<p>" }</SCRIPT></HEAD>
            <body><!-- <p>hidden</p> --><h1>Bad&nbsp;gateway</h1><p>Ray ID: 7 &bull; a &lt;b&gt; &amp; &quot;c&quot; &#39;d&#39;</p></body></HTML>
            """
        #expect(text(page) == "Bad gateway Ray ID: 7 • a <b> & \"c\" 'd'")
    }

    @Test func plainTextKeepsItsAnglesAndCollapsesBlanks() {
        #expect(text("  upstream connect error\r\n\tor disconnect: a < b  \n", html: false)
                == "upstream connect error or disconnect: a < b")
        // Labelled text/plain but markup all the same: stripped.
        #expect(text("\n<html><body>404</body></html>", html: false) == "404")
    }

    @Test func longTextIsCutAndAnUnendedTagEndsThePage() {
        #expect(text(String(repeating: "x", count: 500), limit: 10) == "xxxxxxxxx…")
        #expect(text("<p>ok</p><script>never closed") == "ok")
        #expect(text("") == "")
    }
}
